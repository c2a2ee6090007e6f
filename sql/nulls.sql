-- Every function of the extension, called with NULL for every argument,
-- as a superuser and as an ordinary role: an error or a result, never a
-- crashed backend. (A function added later shows up here: decide what its
-- NULLs mean.) Trigger functions cannot be called and are left out; the
-- calls run in a transaction that is rolled back.
CREATE ROLE ao_nulls LOGIN;
CREATE FUNCTION pg_temp.call_with_nulls(fn regprocedure) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    args text;
BEGIN
    SELECT coalesce(string_agg('NULL::' || format_type(t, NULL), ', ' ORDER BY o), '')
      INTO args
      FROM unnest((SELECT proargtypes::oid[] FROM pg_proc WHERE oid = fn)) WITH ORDINALITY AS a(t, o);
    BEGIN
        IF (SELECT proretset FROM pg_proc WHERE oid = fn) THEN
            EXECUTE format('SELECT count(*) FROM %s.%I(%s)', (SELECT pronamespace::regnamespace FROM pg_proc WHERE oid = fn),
                           (SELECT proname FROM pg_proc WHERE oid = fn), args);
        ELSE
            EXECUTE format('SELECT %s.%I(%s)', (SELECT pronamespace::regnamespace FROM pg_proc WHERE oid = fn),
                           (SELECT proname FROM pg_proc WHERE oid = fn), args);
        END IF;
        RETURN 'ok';
    EXCEPTION WHEN OTHERS THEN
        RETURN SQLSTATE;
    END;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.call_with_nulls(regprocedure) TO ao_nulls;
BEGIN;
SELECT p.oid::regprocedure AS function, pg_temp.call_with_nulls(p.oid) AS superuser
  FROM pg_proc p
 WHERE p.pronamespace = 'agentorch'::regnamespace AND p.prorettype <> 'trigger'::regtype
 ORDER BY p.oid::regprocedure::text;
ROLLBACK;
BEGIN;
SET LOCAL ROLE ao_nulls;
SELECT p.oid::regprocedure AS function, pg_temp.call_with_nulls(p.oid) AS ordinary_role
  FROM pg_proc p
 WHERE p.pronamespace = 'agentorch'::regnamespace AND p.prorettype <> 'trigger'::regtype
   AND has_function_privilege(p.oid, 'execute')
 ORDER BY p.oid::regprocedure::text;
ROLLBACK;
-- the server is still up, and nothing was stored
SELECT count(*) AS runs FROM agentorch.runs WHERE owner = 'ao_nulls'::regrole;
DROP FUNCTION pg_temp.call_with_nulls(regprocedure);
DROP ROLE ao_nulls;
