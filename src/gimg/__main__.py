"""python -m gimg"""

from .cli import main

main()
