"""Services hold the rules of SPEC §2-5; every interface and the scheduler call them alike."""
