"""`rnclassifier serve`: scoring as a web service, for a browser, a REST client or a pipeline.

One bundle, loaded once into each scoring process (`worker`) and kept warm; uploads streamed to
a private folder and removed after the answer (`uploads`); the routes, the token and the
refusals (`app`); the page (`page`) and the bundle's description it is built from (`describe`).
"""

from rnclassifier.service.app import ResultStore, Settings, create_app
from rnclassifier.service.uploads import Limits

__all__ = ["Limits", "ResultStore", "Settings", "create_app"]
