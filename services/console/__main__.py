"""Run the staff console: python -m services.console"""

from shared.serve import serve

from services.console.bootstrap import bootstrap
from services.console.settings import ConsoleSettings

if __name__ == "__main__":
    serve(bootstrap, ConsoleSettings())
