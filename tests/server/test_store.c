/* The state database's retention: audit lines and tombstones are kept SBS_RETENTION_MS and
 * pruned after, so a daemon that creates and destroys leases for months keeps a bounded
 * database (the soak scenario in soak/soak_leases.c measures it across 1,000 leases). */
#include "server/store.h"
#include "srvtest.h"

static void audit_lines_are_pruned_after_the_retention(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("store");
	char *db = sbt_path(dir, "sandbar.db");
	sbs_store *st = NULL;
	SB_ASSERT_OK(sbs_store_open(db, &st));
	for (int i = 0; i < 3; i++)
		SB_ASSERT_OK(sbs_store_audit(st, "lease-a", "acquire", NULL));
	assert_int_equal(sbs_store_audit_count(st), 3);
	/* lines younger than the retention stay */
	SB_ASSERT_OK(sbs_store_prune_audit(st, sb_wall_ms() - SBS_RETENTION_MS));
	assert_int_equal(sbs_store_audit_count(st), 3);
	/* once older than the cutoff, they go */
	SB_ASSERT_OK(sbs_store_prune_audit(st, sb_wall_ms() + 1000));
	assert_int_equal(sbs_store_audit_count(st), 0);
	sbs_store_close(st);
	free(db);
	sbt_rmtree(dir); /* frees dir */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(audit_lines_are_pruned_after_the_retention),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
