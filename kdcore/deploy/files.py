"""The names an export is made of, torch-free: the CLI's parser and the web process read them."""

FORMATS = ("weights", "onnx", "pt2")
FILE_NAMES = {"weights": "model.pt", "onnx": "model.onnx", "pt2": "model.pt2"}
CARD = "card.json"
INPUT_NAME, OUTPUT_NAME = "images", "logits"
# What `pip install 'kd-dashboard[deploy]'` brings: the exporter's dependencies and the runtime that checks it.
DEPLOY_EXTRA = ("onnx", "onnxruntime", "onnxscript")
