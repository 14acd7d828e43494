"""Which pixels matter: occlusion, saliency, Grad-CAM, and sliding windows over large images."""

__all__: list = []
