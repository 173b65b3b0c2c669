package future

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestProgressAfterResolutionIsDropped checks that a report that comes
// after the answer changes nothing.
func TestProgressAfterResolutionIsDropped(t *testing.T) {
	f := New()
	f.SetProgress(Progress{Done: 1, Total: 2})
	changed := f.Changed()
	if !f.Resolve(nil) {
		t.Fatal("Resolve() = false on a new future")
	}
	<-changed // resolution closes it: no change will come
	f.SetProgress(Progress{Done: 9, Total: 9})
	if p, ok := f.Progress(); !ok || p.Done != 1 {
		t.Errorf("Progress() after a report past the resolution = %+v, %v; want the last one before it, 1 of 2", p, ok)
	}
	select {
	case <-f.Changed():
	default:
		t.Error("Changed() of a resolved future is open; want it closed")
	}
}

// TestCallbacksCoalesce holds the callback while reports come, and checks
// that it then gets the latest, and that SetProgress never waits for it.
func TestCallbacksCoalesce(t *testing.T) {
	f := New()
	entered := make(chan int64)
	release := make(chan struct{})
	f.OnProgress(func(p Progress) {
		entered <- p.Done
		<-release
	})
	f.SetProgress(Progress{Done: 1})
	if got := <-entered; got != 1 {
		t.Fatalf("the callback's first report = %d; want 1", got)
	}
	for i := int64(2); i <= 100; i++ {
		f.SetProgress(Progress{Done: i}) // the callback blocks: these must not
	}
	release <- struct{}{}
	if got := <-entered; got != 100 {
		t.Fatalf("the callback's second report = %d; want the latest, 100", got)
	}
	close(release)
	f.Resolve(nil)
}
