"""What the routes call: one service per concept (enrollment, signup)."""
