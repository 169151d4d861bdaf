"""Finding and building model files: model references, ONNX files, cache, metadata."""
