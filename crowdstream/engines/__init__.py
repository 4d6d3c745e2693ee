"""Model contract and runtimes shared by training and the stream service.

Nothing in this package imports torch at module level: the service runs on ONNX Runtime alone.
"""
