# The button box's firmware starts here; all of it is in boxfw.py (see there and README.md).
import boxfw

boxfw.main()
