"""`kerasdl serve`: TensorFlow Serving's REST API for SavedModel directories.

`python -m kerasdl.serving --model_name=lenet --model_base_path=saved_models/lenet`
serves `saved_models/lenet/<version>/` at http://127.0.0.1:8501/v1/models/lenet.
The CLI's `kerasdl serve` delegates here through `add_serve_arguments` and
`run_from_args`. See docs/serving.md.
"""

from kerasdl.serving.server import add_serve_arguments, main, run_from_args  # noqa: F401
