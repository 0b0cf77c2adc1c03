"""The shell: everything that reads or writes files, cameras, windows and terminals."""
