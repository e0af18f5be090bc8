/* An empty program linked with the whole of one layer's static library and only the layers
 * below it (tests/build/CMakeLists.txt): if any object of that layer calls into a layer above
 * it, or into nothing, this program fails to link and so the build fails. */
int main(void)
{
	return 0;
}
