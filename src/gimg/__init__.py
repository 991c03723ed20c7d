"""gimg: how image search portrays occupations by gender, compared with the census."""

__version__ = "0.1.0"
