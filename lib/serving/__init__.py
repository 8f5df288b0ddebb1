"""What the model server needs from lib: load the champion with its contract, check rows."""
