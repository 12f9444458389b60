// The same outside program compiled as C++: the public headers must declare everything
// with C linkage (extern "C"), or this fails to link against the C library.
#include "consumer.c"
