"""``earmark serve``: a web page and a JSON API that label uploaded audio with a trained run.

>>> from earmark.serve import create_app                 # doctest: +SKIP
>>> app = create_app("runs/svm", max_mb=50, top_k=5)      # doctest: +SKIP
>>> import uvicorn; uvicorn.run(app, port=8000)           # doctest: +SKIP
"""

from earmark.serve.app import create_app

__all__ = ["create_app"]
