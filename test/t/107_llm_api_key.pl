# LLM layer: API keys stay in the server's environment. The key is set in
# the environment of the postmaster only, models name the variable
# (api_key_env), and the mock accepts nothing but that key. Runs succeed
# for both providers (so the key was sent), runs with a missing or a
# wrong key fail with a 401; afterwards neither key appears in any row of
# any table of schema agentorch, nor in the server log.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $key = 'sk-aotest-' . join('', map { ('a' .. 'z', 0 .. 9)[ int(rand(36)) ] } 1 .. 24) . '-KEYMARK';
my $wrong = 'sk-aotest-wrong-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 20) . '-WRONGMARK';

my $mock = mock_start('apikey.json', env => { MOCK_LLM_REQUIRE_KEY => $key });
my $node = llm_node('llm_apikey', 'log_min_messages = debug1', 'log_error_verbosity = verbose');
{
	# only the postmaster (and so the executors) inherit the keys
	local $ENV{AO_TEST_API_KEY} = $key;
	local $ENV{AO_WRONG_API_KEY} = $wrong;
	llm_start($node);
}
ok(!defined $ENV{AO_TEST_API_KEY}, 'the key is not in the environment of the test itself');

register_model($node, 'gpt', 'openai', $mock, { model => 'mock-gpt', api_key_env => 'AO_TEST_API_KEY' });
register_model($node, 'claude', 'anthropic', $mock, { model => 'mock-claude', api_key_env => 'AO_TEST_API_KEY' });
register_model($node, 'gpt_unset', 'openai', $mock, { model => 'mock-gpt', api_key_env => 'AO_NOT_SET_ANYWHERE_API_KEY' });
register_model($node, 'gpt_wrong', 'openai', $mock, { model => 'mock-gpt', api_key_env => 'AO_WRONG_API_KEY' });
register_model($node, 'claude_wrong', 'anthropic', $mock, { model => 'mock-claude', api_key_env => 'AO_WRONG_API_KEY' });

my @runs;
for my $model ('gpt', 'claude')
{
	my $run = start_run($node, { prompt => "key check with $model" }, { model => $model });
	push @runs, $run;
	is(wait_status($node, $run), 'succeeded', "$model: the run with the key succeeds");
	is(run_field($node, $run, "output #>> '{}'"), 'The key was accepted.', "$model: the mock answered");
	my $st = mock_get($mock, '/stats');
	is($st->{last_auth_header}, $model eq 'gpt' ? 'authorization' : 'x-api-key', "$model: the key went in the provider's header");
	# structured output too (another request shape)
	$run = start_run($node, { prompt => 'key check structured', response_schema => { type => 'object' } }, { model => $model });
	push @runs, $run;
	is(wait_status($node, $run), 'succeeded', "$model: a structured run with the key succeeds");
}
is(mock_get($mock, '/stats')->{auth_failures}, 0, 'no request was refused so far');

{
	# a variable that is not set: a clear error naming it, and no request
	my $run = start_run($node, { prompt => "key check with gpt_unset" }, { model => 'gpt_unset' });
	push @runs, $run;
	is(wait_status($node, $run), 'failed', "gpt_unset: the run fails");
	my $err = step_row($node, $run, 'main')->{error};
	like($err->{message}, qr/environment variable "AO_NOT_SET_ANYWHERE_API_KEY" .*is not set/,
		"gpt_unset: the error names the unset variable");
	is($err->{sqlstate}, '28000', 'gpt_unset: SQLSTATE 28000');
}
for my $model ('gpt_wrong', 'claude_wrong')
{
	my $run = start_run($node, { prompt => "key check with $model" }, { model => $model });
	push @runs, $run;
	is(wait_status($node, $run), 'failed', "$model: the run fails");
	like(step_row($node, $run, 'main')->{error}{message}, qr/HTTP 401/, "$model: with the provider's 401");
}
is(mock_get($mock, '/stats')->{auth_failures}, 2, 'the mock refused the two runs with the wrong key (the unset one sent nothing)');

# every row of every table of schema agentorch, as JSON text
my $tables = sql($node, q{SELECT string_agg(format('%I.%I', schemaname, tablename), ' ' ORDER BY tablename)
  FROM pg_tables WHERE schemaname = 'agentorch'});
my @tables = split / /, $tables;
cmp_ok(scalar @tables, '>=', 10, 'the tables of schema agentorch: ' . $tables);
# (the rows are searched here, not in SQL: the statement would be logged)
my $rows = 0;
for my $t (@tables)
{
	my @r = split /\n/, sql($node, "SELECT row_to_json(t)::text FROM $t t");
	$rows += @r;
	my $hits = grep { index($_, $key) >= 0 || index($_, $wrong) >= 0 || /KEYMARK|WRONGMARK|sk-aotest/ } @r;
	is($hits, 0, "no row of $t holds a key (" . scalar(@r) . " rows)");
}
cmp_ok($rows, '>', 50, "the tables were not empty ($rows rows searched)");
is(sql($node, q{SELECT count(*) FROM agentorch.models WHERE spec::text LIKE '%api_key_env%'}), '5',
	'the models hold only the names of the variables');

$node->stop;
my $log = slurp_file($node->logfile);
cmp_ok(length($log), '>', 1000, 'the server log was written (' . length($log) . ' bytes)');
like($log, qr/agentorch/, 'the server log mentions agentorch');
ok(index($log, $key) < 0 && index($log, 'KEYMARK') < 0, 'the key is not in the server log');
ok(index($log, $wrong) < 0 && index($log, 'WRONGMARK') < 0, 'the wrong key is not in the server log');
unlike($log, qr/sk-aotest/, 'no part of a key is in the server log');

done_testing();
