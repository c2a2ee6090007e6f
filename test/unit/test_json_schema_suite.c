/*-------------------------------------------------------------------------
 *
 * test_json_schema_suite.c
 *	  Runs the official JSON-Schema-Test-Suite (draft 7) against the core's
 *	  validator.
 *
 * Every top-level "*.json" file in tests/draft7 of the suite (Debian package
 * json-schema-test-suite, or the directory named by the environment
 * variable JSON_SCHEMA_TEST_SUITE_DIR) is a list of groups, each a schema
 * with test cases {description, data, valid}. Each case becomes one TAP
 * line "file: group: case". A case passes when ao_json_schema_check finds
 * the schema usable, ao_json_schema_validate's verdict matches "valid" and
 * the number of reported problems equals its return value.
 *
 * Cases the validator does not support by design are listed in skip_table
 * with the reason, and counted in the closing summary comment.
 *
 * Copyright (c) 2026, agentorch developers
 *
 * IDENTIFICATION
 *	  test/unit/test_json_schema_suite.c
 *
 *-------------------------------------------------------------------------
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "ao_json_schema.h"
#include "unit.h"

#define DEFAULT_SUITE_DIR "/usr/share/json-schema-test-suite/tests/draft7"

/* A file, a group of a file, or one case of a group that is not run. */
typedef struct skip_entry
{
	const char *file;
	const char *group;			/* NULL: the whole file */
	const char *test;			/* NULL: the whole group */
	const char *reason;
	int			matched;		/* cases skipped through this entry */
} skip_entry;

static skip_entry skip_table[] = {
	{"definitions.json", NULL, NULL,
		"validates against the draft-07 metaschema by remote $ref "
		"\"http://json-schema.org/draft-07/schema#\"; remote refs are refused "
	"by design and no metaschema is bundled", 0},
	{"ref.json", "remote ref, containing refs itself", NULL,
		"remote $ref to the draft-07 metaschema (see definitions.json)", 0},
	{"refRemote.json", NULL, NULL,
		"every group fetches http://localhost:1234/... documents; remote refs "
	"are refused by design", 0},
};

#define NSKIPS (sizeof(skip_table) / sizeof(skip_table[0]))

/* Problems reported by one validation. */
typedef struct collected
{
	int			count;
	ao_buf		text;
} collected;

/* ao_problem_fn: remember each problem as a "#   path: message" line. */
static void
collect_problem(void *arg, const char *path, const char *message)
{
	collected  *c = arg;

	c->count++;
	ao_buf_printf(&c->text, "#   \"%s\": %s\n", path, message);
}

/* The skip entry covering file/group/test, or NULL. */
static skip_entry *
find_skip(const char *file, const char *group, const char *test)
{
	for (size_t i = 0; i < NSKIPS; i++)
	{
		skip_entry *s = &skip_table[i];

		if (strcmp(s->file, file) != 0)
			continue;
		if (s->group && (group == NULL || strcmp(s->group, group) != 0))
			continue;
		if (s->test && (test == NULL || strcmp(s->test, test) != 0))
			continue;
		return s;
	}
	return NULL;
}

/* Read and parse a JSON file (deeper nesting allowed than json-c's 32). */
static json_object *
load_json(const char *filename)
{
	FILE	   *f = fopen(filename, "rb");
	ao_buf		text;
	char		chunk[8192];
	size_t		n;
	json_tokener *tok;
	json_object *result;

	if (f == NULL)
		return NULL;
	ao_buf_init(&text);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ao_buf_append_n(&text, chunk, n);
	fclose(f);
	tok = json_tokener_new_ex(256);
	result = json_tokener_parse_ex(tok, text.data, (int) text.len);
	if (json_tokener_get_error(tok) != json_tokener_success)
	{
		json_object_put(result);
		result = NULL;
	}
	json_tokener_free(tok);
	ao_buf_free(&text);
	return result;
}

/* Order file names for qsort. */
static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The description member of a group or case, or "?". */
static const char *
description(json_object *o)
{
	json_object *d;

	if (json_object_object_get_ex(o, "description", &d) &&
		json_object_is_type(d, json_type_string))
		return json_object_get_string(d);
	return "?";
}

/* Run every case of one suite file; update passed/total/skipped. */
static void
run_file(const char *dir, const char *file, int *passed, int *total, int *skipped)
{
	ao_buf		path;
	json_object *groups;

	ao_buf_init(&path);
	ao_buf_printf(&path, "%s/%s", dir, file);
	groups = load_json(path.data);
	if (!json_object_is_type(groups, json_type_array))
	{
		ao_buf_reset(&path);
		ao_buf_printf(&path, "%s: file parses as an array of groups", file);
		UNIT_OK(0, path.data);
		(*total)++;
		json_object_put(groups);
		ao_buf_free(&path);
		return;
	}

	for (size_t g = 0; g < json_object_array_length(groups); g++)
	{
		json_object *group = json_object_array_get_idx(groups, g);
		const char *gdesc = description(group);
		json_object *schema = NULL;
		json_object *tests = NULL;
		collected	check;
		bool		checked = false;

		json_object_object_get_ex(group, "schema", &schema);
		json_object_object_get_ex(group, "tests", &tests);
		if (!json_object_is_type(tests, json_type_array))
			continue;

		check.count = 0;
		ao_buf_init(&check.text);
		for (size_t t = 0; t < json_object_array_length(tests); t++)
		{
			json_object *test = json_object_array_get_idx(tests, t);
			const char *tdesc = description(test);
			skip_entry *skip = find_skip(file, gdesc, tdesc);
			json_object *data = NULL;
			json_object *expect = NULL;
			collected	got;
			int			n;
			bool		want_valid;
			bool		ok;

			if (skip)
			{
				skip->matched++;
				(*skipped)++;
				continue;
			}
			if (!checked)
			{
				/* check the schema once per group (lazily, after skips) */
				ao_json_schema_check(schema, collect_problem, &check);
				checked = true;
			}

			json_object_object_get_ex(test, "data", &data);
			json_object_object_get_ex(test, "valid", &expect);
			want_valid = json_object_get_boolean(expect);
			got.count = 0;
			ao_buf_init(&got.text);
			n = ao_json_schema_validate(schema, data, collect_problem, &got);
			ok = check.count == 0 && n == got.count && (n == 0) == want_valid;

			ao_buf_reset(&path);
			ao_buf_printf(&path, "%s: %s: %s", file, gdesc, tdesc);
			(*total)++;
			if (UNIT_OK(ok, path.data))
				(*passed)++;
			else
			{
				if (check.count != 0)
					printf("#   schema check reported:\n%s", check.text.data);
				printf("#   expected %s, validator returned %d (%d reported)\n%s",
					   want_valid ? "valid" : "invalid", n, got.count, got.text.data);
			}
			ao_buf_free(&got.text);
		}
		ao_buf_free(&check.text);
	}
	json_object_put(groups);
	ao_buf_free(&path);
}

/* Run the suite directory and print the summary comment. */
int
main(void)
{
	const char *dir = getenv("JSON_SCHEMA_TEST_SUITE_DIR");
	DIR		   *d;
	struct dirent *ent;
	char	  **files = NULL;
	size_t		nfiles = 0;
	size_t		cap = 0;
	int			passed = 0;
	int			total = 0;
	int			skipped = 0;
	ao_buf		summary;

	if (dir == NULL || *dir == '\0')
		dir = DEFAULT_SUITE_DIR;
	d = opendir(dir);
	if (d == NULL)
	{
		printf("# cannot open %s\n", dir);
		UNIT_OK(0, "draft7 suite directory is readable");
		return unit_done();
	}
	while ((ent = readdir(d)) != NULL)
	{
		size_t		len = strlen(ent->d_name);
		ao_buf		full;
		struct stat st;
		bool		regular;

		if (len < 6 || strcmp(ent->d_name + len - 5, ".json") != 0)
			continue;
		ao_buf_init(&full);
		ao_buf_printf(&full, "%s/%s", dir, ent->d_name);
		regular = stat(full.data, &st) == 0 && S_ISREG(st.st_mode);
		ao_buf_free(&full);
		if (!regular)
			continue;
		if (nfiles == cap)
		{
			cap = cap ? cap * 2 : 64;
			files = realloc(files, cap * sizeof(char *));
			if (files == NULL)
				abort();
		}
		files[nfiles++] = strdup(ent->d_name);
	}
	closedir(d);
	if (nfiles > 0)
		qsort(files, nfiles, sizeof(char *), compare_names);

	for (size_t i = 0; i < nfiles; i++)
		run_file(dir, files[i], &passed, &total, &skipped);

	/* a skip entry that matches nothing is stale: fail loudly */
	ao_buf_init(&summary);
	for (size_t i = 0; i < NSKIPS; i++)
	{
		if (skip_table[i].matched > 0)
			continue;
		ao_buf_reset(&summary);
		ao_buf_printf(&summary, "skip table entry %s%s%s matches a suite case",
					  skip_table[i].file, skip_table[i].group ? ": " : "",
					  skip_table[i].group ? skip_table[i].group : "");
		UNIT_OK(0, summary.data);
	}

	ao_buf_reset(&summary);
	for (size_t i = 0; i < NSKIPS; i++)
	{
		if (skip_table[i].matched == 0)
			continue;
		if (summary.len > 0)
			ao_buf_append(&summary, ", ");
		ao_buf_append(&summary, skip_table[i].file);
		if (skip_table[i].group)
			ao_buf_printf(&summary, " (\"%s\"%s%s%s)", skip_table[i].group,
						  skip_table[i].test ? ": \"" : "",
						  skip_table[i].test ? skip_table[i].test : "",
						  skip_table[i].test ? "\"" : "");
	}
	printf("# draft7 suite: passed %d/%d supported cases (%d skipped: %s)\n",
		   passed, total, skipped, summary.len ? summary.data : "none");
	ao_buf_free(&summary);
	for (size_t i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	return unit_done();
}
