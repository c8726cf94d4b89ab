#include <stdio.h>

int main(void) {
    printf("Hello from a tare-built image!\n");
    return 0;
}
