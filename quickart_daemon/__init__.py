"""QuickArt: the render daemon that turns key drawings dropped into shot folders into finished frames."""

__version__ = "0.1.0"
