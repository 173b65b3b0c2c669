// Package tracepoint marks the points a task passes on its way from
// Schedule to Value, in the parent and in the child, for the latency
// trace (bash bench/run.sh trace). Built without the procrastinate_trace
// tag, Mark and Dump do nothing and cost nothing; with it, each process
// keeps a timestamp (CLOCK_MONOTONIC, the same clock in every process) and
// the CPU of every mark, and Dump writes them to the directory named by
// $PROCRASTINATE_TRACE.
package tracepoint

// Point is a place on a task's way, in the order it passes them. The two
// writes are marked as they start: the process they wake may run before
// the write returns (on the writer's CPU, it preempts the writer), and the
// step after a write holds its cost and the wake-up.
type Point uint8

// The points. The parent's are marked by the dispatcher and procman, the
// child's by procman's Child and the task package's child loop; Scheduled
// and ValueReturned are the caller's, marked by the latency benchmarks.
const (
	Scheduled       Point = iota + 1 // the caller is about to call Schedule
	ManagerAwake                     // the manager's Step returned from its wait
	JobTaken                         // the manager took the job from its inbox
	InvocationWrite                  // the manager starts writing the invocation into the child's pipe
	ChildRead                        // the child's reader has the invocation's frame
	ChildTook                        // the child's task loop has the invocation
	TaskStarted                      // the task's function is about to be called
	TaskDone                         // the task's result is encoded
	AnswerWrite                      // the child starts writing the answer into the parent's pipe
	AnswerRead                       // the manager has the answer's frame
	Resolved                         // the future is resolved
	ValueReturned                    // the caller's Value returned
	numPoints
)

var names = [numPoints]string{
	Scheduled:       "Scheduled",
	ManagerAwake:    "ManagerAwake",
	JobTaken:        "JobTaken",
	InvocationWrite: "InvocationWrite",
	ChildRead:       "ChildRead",
	ChildTook:       "ChildTook",
	TaskStarted:     "TaskStarted",
	TaskDone:        "TaskDone",
	AnswerWrite:     "AnswerWrite",
	AnswerRead:      "AnswerRead",
	Resolved:        "Resolved",
	ValueReturned:   "ValueReturned",
}

// String returns the point's name.
func (p Point) String() string {
	if p < numPoints && names[p] != "" {
		return names[p]
	}
	return "Point(?)"
}

// Points returns every point, in order.
func Points() []Point {
	ps := make([]Point, 0, numPoints-1)
	for p := Scheduled; p < numPoints; p++ {
		ps = append(ps, p)
	}
	return ps
}

// Parse returns the point named s.
func Parse(s string) (Point, bool) {
	for p := Scheduled; p < numPoints; p++ {
		if names[p] == s {
			return p, true
		}
	}
	return 0, false
}
