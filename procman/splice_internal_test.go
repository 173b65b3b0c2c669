//go:build linux && !procrastinate_portable

package procman

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A system that refuses vmsplice (a seccomp filter, gVisor) still gets
// whole frames: what vmsplice did not take goes by write, and so does
// every payload after.
func TestSpliceRefusedFallsBackToWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after int // bytes vmsplice takes before it refuses
		err   error
	}{
		{"at once, ENOSYS", 0, unix.ENOSYS},
		{"after 256 KiB, EPERM", 256 << 10, unix.EPERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// vmsplice takes up to tc.after bytes, then refuses.
			took := 0
			vmsplice = func(fd int, iovs []unix.Iovec, flags int) (int, error) {
				left := tc.after - took
				if left <= 0 {
					return 0, tc.err
				}
				if int(iovs[0].Len) > left {
					iovs[0].SetLen(left)
				}
				n, err := unix.Vmsplice(fd, iovs, flags)
				took += n
				return n, err
			}
			t.Cleanup(func() { vmsplice = unix.Vmsplice })

			r, w, err := os.Pipe()
			require.NoError(t, err)
			defer r.Close()
			c := &Child{out: w}
			c.outConn, err = w.SyscallConn()
			require.NoError(t, err)
			payload := bytes.Repeat([]byte("0123456789abcdef"), (spliceMin+4096)/16)
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(r)
				got <- b
			}()
			require.NoError(t, c.write(frameReply, 300, testAnswer, payload))
			require.Nil(t, c.outConn, "after a refusal, payloads go by write")
			require.NoError(t, w.Close())
			want := appendNumberedFrame(nil, frameReply, 300, testAnswer, payload)
			require.True(t, bytes.Equal(want, <-got), "the frame arrived whole")
			require.Equal(t, tc.after, took, "vmsplice took what it could before it refused")
		})
	}
}
