"""Run the plans service: python -m services.plans"""

from shared.serve import serve

from services.plans.bootstrap import bootstrap
from services.plans.settings import PlansSettings

if __name__ == "__main__":
    serve(bootstrap, PlansSettings())
