"""`cityops api`: the HTTP face. Assembly in `app.py`; one module per audience beside it."""
