"""SymPy layer: conventions, cell equations, gradients, exact evaluation."""
