package procman

// testAnswer is the kind of the test children's replies (see main_test.go).
const testAnswer Kind = 1

// EncodeInvocation is set by the external tests (main_test.go) to encode
// an invocation for the test children, which internal tests cannot do
// themselves: the encoding's package imports this one.
var EncodeInvocation func(task string, arg []byte, last bool) []byte

// The frame classes and framing, for the external tests, which write raw
// frames as a hostile child would, and read them as a parent.
const (
	FrameInvocation = frameInvocation
	FrameReply      = frameReply
	FrameNote       = frameNote
	FrameStop       = frameStop
	FrameFile       = frameFile
	FrameFilePart   = frameFilePart
	FileMin         = fileMin
)

var (
	AppendHeader        = appendHeader
	AppendFrame         = appendFrame
	AppendNumberedFrame = appendNumberedFrame
	AppendNumberedHead  = appendNumberedHeader
	AppendFileFrame     = appendFileFrame
	AppendFilePart      = appendFilePart
	ReadFrame           = readFrame
	CutNumber           = cutNumber
	ErrNotAFrame        = errNotAFrame
)

// FrameTooLargeError is the error of a frame over the size limit.
type FrameTooLargeError = frameTooLargeError

// FrameClassForTest converts a class byte.
func FrameClassForTest(c byte) frameClass { return frameClass(c) }

// CookieValue is the protocol marker a child of this build expects, for
// the external tests that start children by hand.
const CookieValue = cookieValue
