"""npnet: autoencoders in NumPy with hand-written backpropagation."""
