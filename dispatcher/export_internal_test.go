package dispatcher

import "errors"

func init() { strictStates = true }

// Audit checks d's counters (Stats' Queued and Running among them)
// against the states of its jobs and children, on its manager goroutine,
// and returns what disagrees. It returns an error once d has ended.
func Audit(d *Dispatcher) error {
	ch := make(chan error, 1)
	d.mu.Lock()
	if d.closed() {
		d.mu.Unlock()
		return errors.New("dispatcher: audit: the dispatcher has ended")
	}
	d.inbox = append(d.inbox, auditReq(ch))
	d.mu.Unlock()
	d.wakeup()
	select {
	case err := <-ch:
		return err
	case <-d.done:
		return errors.New("dispatcher: audit: the dispatcher ended first")
	}
}
