package pool

// SetMemAvailable replaces the MemAvailable reader for a test and returns a
// function that restores it.
func SetMemAvailable(f func() (int64, error)) (restore func()) {
	old := memAvailable
	memAvailable = f
	return func() { memAvailable = old }
}
