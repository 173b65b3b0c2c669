package procman

import "syscall"

// readStderr reads what the child wrote to its captured stderr, keeps the
// tail and passes it on to Spec.StderrCopy.
func (p *Process) readStderr() {
	if p.errfd < 0 {
		return
	}
	var buf [32 << 10]byte
	for {
		n, err := readFD(p.errfd, buf[:])
		if err != nil || n <= 0 {
			if err != syscall.EAGAIN {
				p.closeStderr() // end of file: the child and all it started are done with it
			}
			return
		}
		if p.errCopy != nil {
			_, _ = p.errCopy.Write(buf[:n])
		}
		p.tail = append(p.tail, buf[:n]...)
		if len(p.tail) > 2*p.tailMax {
			p.tail = append(p.tail[:0:0], p.tail[len(p.tail)-p.tailMax:]...)
		}
	}
}

func (p *Process) closeStderr() {
	if p.errfd < 0 {
		return
	}
	p.m.unwatch(p.errfd)
	closeFD(p.errfd)
	p.errfd = -1
	if len(p.tail) > p.tailMax {
		p.tail = append(p.tail[:0:0], p.tail[len(p.tail)-p.tailMax:]...)
	}
}
