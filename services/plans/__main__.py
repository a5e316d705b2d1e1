"""Run the plans service: python -m services.plans"""

from services.plans.bootstrap import bootstrap
from services.plans.settings import PlansSettings
from shared.serve import serve

if __name__ == "__main__":
    serve(bootstrap, PlansSettings())
