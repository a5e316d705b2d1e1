"""Run the notifier: python -m services.notifier"""

from shared.serve import serve

from services.notifier.bootstrap import bootstrap
from services.notifier.settings import NotifierSettings

if __name__ == "__main__":
    serve(bootstrap, NotifierSettings())
