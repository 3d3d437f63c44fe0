WIDTHS = (4, 8)
