"""Built-in component libraries of fbp, installed as `fbp_components` (one subpackage per library)."""
