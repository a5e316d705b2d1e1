"""Run the booking service: python -m services.booking"""

from shared.serve import serve

from services.booking.bootstrap import bootstrap
from services.booking.settings import BookingSettings

if __name__ == "__main__":
    serve(bootstrap, BookingSettings())
