"""Run the notifier: python -m services.notifier"""

from services.notifier.bootstrap import bootstrap
from services.notifier.settings import NotifierSettings
from shared.serve import serve

if __name__ == "__main__":
    serve(bootstrap, NotifierSettings())
