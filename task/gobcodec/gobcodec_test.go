package gobcodec_test

import (
	"bytes"
	"encoding/gob"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procrastinate-go/procrastinate/task/gobcodec"
)

type record struct {
	N    int
	Tags map[string]complex64
}

func TestCodecRoundTripsWhatGobCarries(t *testing.T) {
	in := record{N: 7, Tags: map[string]complex64{"i": 1i}}
	data, err := gobcodec.Codec.Marshal(in)
	require.NoError(t, err)
	var out record
	require.NoError(t, gobcodec.Codec.Unmarshal(data, &out))
	assert.Equal(t, in, out)
	assert.Equal(t, "gob", gobcodec.Codec.Name())
}

// A []byte is its own payload, both ways, without a copy.
func TestCodecPassesBytesThrough(t *testing.T) {
	in := []byte("\x00raw bytes")
	data, err := gobcodec.Codec.Marshal(in)
	require.NoError(t, err)
	require.Same(t, &in[0], &data[0], "Marshal copied the bytes")
	var out []byte
	require.NoError(t, gobcodec.Codec.Unmarshal(data, &out))
	require.Same(t, &data[0], &out[0], "Unmarshal copied the bytes")
}

// gob panics on a nil pointer as the whole value; the codec says so in an
// error.
func TestCodecRefusesANilPointerWithAnError(t *testing.T) {
	_, err := gobcodec.Codec.Marshal((*record)(nil))
	require.ErrorContains(t, err, "gob: cannot encode nil pointer of type *gobcodec_test.record")
}

// A gob stream that does not decode is an error, never a panic.
func TestCodecRefusesGarbage(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, gob.NewEncoder(&buf).Encode(record{N: 1}))
	var s string
	require.Error(t, gobcodec.Codec.Unmarshal(buf.Bytes(), &s), "a record decoded into a string")
	require.Error(t, gobcodec.Codec.Unmarshal([]byte{0xff, 0xff}, &s), "garbage decoded")
}
