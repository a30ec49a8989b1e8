package tracing

// Pending is how many failed attempts t remembers, to link their retries.
func (t *Tracer) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.failed)
}
