"""gancodec: a learned image codec."""
