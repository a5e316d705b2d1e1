"""Run the booking service: python -m services.booking"""

from services.booking.bootstrap import bootstrap
from services.booking.settings import BookingSettings
from shared.serve import serve

if __name__ == "__main__":
    serve(bootstrap, BookingSettings())
