package result_test

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/procrastinate-go/procrastinate/result"
)

func ExampleNew() {
	r, res := result.New(func(b []byte) (int, error) {
		return strconv.Atoi(string(b))
	})

	// The dispatcher resolves the future when the child answers.
	go res.Resolve([]byte("49"))

	v, err := r.Value() // waits; decodes here, on this goroutine
	fmt.Println(v, err)
	// Output: 49 <nil>
}

func ExampleChildDeath() {
	var err error = &result.ChildDeath{
		Task:     "square",
		Pid:      1234,
		ExitCode: -1,
		Signal:   syscall.SIGKILL,
		Duration: 12 * time.Millisecond,
	}
	err = fmt.Errorf("waiting for square(7): %w", err)

	var death *result.ChildDeath
	if errors.As(err, &death) {
		fmt.Println("signal:", death.Signal)
		fmt.Println(death)
	}
	// Output:
	// signal: killed
	// result: task "square": child 1234 died before answering: killed by signal 9 (killed) after 12ms
}
