package store

// WriteAtomic writes data to a temporary file (mode 0600) beside path,
// fsyncs it, renames it over path and fsyncs the directory: readers see the
// old contents or the new, never part of them. The handoff state uses it
// too.
func WriteAtomic(path string, data []byte) error { return writeAtomic(path, data) }
