"""What every service of the project shares. Importing it makes `zoneinfo` read the
project's pinned `tzdata` package, not the machine's rules (see `shared.zones`)."""

from shared.zones import use_packaged_rules

use_packaged_rules()
