"""Run the staff console: python -m services.console"""

from services.console.bootstrap import bootstrap
from services.console.settings import ConsoleSettings
from shared.serve import serve

if __name__ == "__main__":
    serve(bootstrap, ConsoleSettings())
