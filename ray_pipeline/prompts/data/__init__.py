"""Class-name lists shipped as package data (one name per line; see ../classlists.py)."""
