"""xray: hit finding, corrections and azimuthal integration for light-source frames."""
