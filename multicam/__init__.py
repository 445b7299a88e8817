"""MultiCam: synchronized multi-camera video datasets in the MultiCamVideo format."""
__version__ = "0.1.0"
