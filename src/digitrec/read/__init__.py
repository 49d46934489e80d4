"""Reading whole written numbers (`digitrec read`, `Recognizer.read`): segmentation, the digit
model, the segmentation verifier and the line reader, composed."""
