"""What the API takes and answers, as pydantic models: they validate JSON bodies and write the
OpenAPI schema that /docs shows and the schema tests fuzz."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ImagesIn(BaseModel):
    """The JSON form of a request: what the drawing page sends."""

    images: list[str] = Field(
        ...,
        min_length=1,
        description="Images as base64 (PNG, JPEG, ...); a `data:image/png;base64,` prefix is allowed.",
    )


class PredictionOut(BaseModel):
    digit: int | None = Field(None, description="The digit read; null when the answer is uncertain.")
    confidence: float = Field(0.0, description="Probability of the most likely digit, 0 to 1.")
    top: list[tuple[int, float]] = Field([], description="Most likely digits with their probabilities.")
    probabilities: list[float] = Field([], description="Probability of each digit 0-9.")
    uncertain: bool = Field(False, description="True when the answer is flagged: see `reason`.")
    reason: str | None = Field(
        None,
        description="Why it is uncertain or failed: 'low confidence' (under the server's --min-confidence), "
        "'not a digit', 'several digits' or 'no ink' (a blank image, with an error); null when answered.",
    )
    image28: str | None = Field(None, description="The 28x28 image the model saw, base64 PNG (if asked).")
    error: str | None = Field(None, description="Why this image could not be read; the others still are.")


class PredictOut(BaseModel):
    predictions: list[PredictionOut] = Field(..., description="One answer per image, in input order.")


class DigitBox(BaseModel):
    digit: int | None
    confidence: float
    box: tuple[int, int, int, int] = Field(..., description="x, y, width, height in input pixels.")
    uncertain: bool = Field(False, description="Its confidence is under the server's min_confidence: check it.")
    line: int = Field(0, description="Which of the reading's lines (from 0) it is in.")


class ReadingOut(BaseModel):
    text: str | None = Field(None, description="The digits read (lines joined by a newline), or null.")
    confidence: float = Field(0.0, description="Probability that the whole number is right, 0 to 1.")
    digits: list[DigitBox] = []
    lines: list[str] = []
    uncertain: bool = Field(False, description="The number's confidence is under the server's min_confidence.")
    reason: str | None = Field(None, description="Why it is uncertain ('low confidence'), or null.")
    error: str | None = None


class ReadOut(BaseModel):
    readings: list[ReadingOut] = Field(..., description="One answer per image, in input order.")


class ErrorOut(BaseModel):
    detail: str = Field(..., description="What was wrong with the request, in words.")


class Health(BaseModel):
    status: str = "ok"
    model: str
