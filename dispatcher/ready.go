package dispatcher

// offer makes c, a child that has just started or answered, ready to take
// work if it may take more now, and busy if not. A child that takes no
// more work stays as it is, and so does every child once the dispatcher
// is killing.
func (d *Dispatcher) offer(c *child) {
	switch c.state {
	case childStarting, childBusy:
	default:
		return
	}
	if d.stop == killing {
		d.moveChild(c, childBusy)
		return
	}
	if len(c.inflight) >= d.depth {
		d.moveChild(c, childBusy)
		return
	}
	d.moveChild(c, childReady)
}
