package task_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/procrastinate-go/procrastinate/dispatcher"
	"github.com/procrastinate-go/procrastinate/result"
	"github.com/procrastinate-go/procrastinate/strategy"
	"github.com/procrastinate-go/procrastinate/task"
)

// Tasks are defined at package level, so that the program and each of its
// children (fresh starts of the same executable, which run
// procrastinate.Main first thing in main or TestMain) know them by name.
var square = task.Define("example.com/calc.square", func(ctx context.Context, n int) (int, error) {
	if n < 0 {
		return 0, errors.New("negative input")
	}
	return n * n, nil
})

func ExampleDefine() {
	d, err := dispatcher.Start(strategy.Throttled(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close() // everything is read before it runs; after a panic, nothing waits for the queue

	fmt.Println(square.Name())

	r := square.Schedule(d, 7) // returns at once
	v, err := r.Value()        // waits for the child's answer
	fmt.Println(v, err)

	// A task's error comes back as a *result.TaskError.
	_, err = square.Schedule(d, -1).Value()
	var te *result.TaskError
	if errors.As(err, &te) {
		fmt.Println("failed:", te.Message)
	}
	// Output:
	// example.com/calc.square
	// 49 <nil>
	// failed: negative input
}

// An order travels as JSON, with its field tags, both ways.
type order struct {
	Item     string `json:"item"`
	Quantity int    `json:"qty"`
}

type receipt struct {
	Line string `json:"line"`
}

var place = task.Define("example.com/shop.place", func(ctx context.Context, o order) (receipt, error) {
	return receipt{Line: fmt.Sprintf("%d × %s", o.Quantity, strings.ToUpper(o.Item))}, nil
}, task.WithCodec(task.JSON))

func ExampleWithCodec() {
	d, err := dispatcher.Start(strategy.Simple())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close() // everything is read before it runs; after a panic, nothing waits for the queue

	r, err := place.Schedule(d, order{Item: "tea", Quantity: 2}).Value()
	fmt.Println(r.Line, err)
	// Output: 2 × TEA <nil>
}
