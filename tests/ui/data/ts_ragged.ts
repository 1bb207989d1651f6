@problemName Bad
@dimensions 2
@equalLength true
@classLabel true walk stand
@data
1,2,3:4,5,6:walk
0.5,0.25:1,1,1:stand
