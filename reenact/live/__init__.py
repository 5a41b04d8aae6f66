"""`reenact live`: reenactment in real time, from a camera or stream to files, streams, a virtual camera or a window."""
