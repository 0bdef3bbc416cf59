"""The client side of Cadenza's sandbox: imported by user code running in a child process."""
